// Ceiling of SQLite's own insert rate for the audit rows: rows of a bench run's audit store
// (loaded into memory), replicated with prefixed ids, inserted through prepared single-row
// statements bound with SQLITE_STATIC, in transactions of ~TX rows. No Rust, no sqlx, no Redis.
#include "sqlite3.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
typedef struct { int type; sqlite3_int64 i; double d; char *s; int n; } Val;
typedef struct { char name[64]; int ncol; int nrow; Val *v; sqlite3_stmt *ins; int timecol[64]; } Tab;
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static double cpu(){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec/1e9;}
#define CK(x) do{int rc_=(x); if(rc_!=SQLITE_OK&&rc_!=SQLITE_DONE&&rc_!=SQLITE_ROW){fprintf(stderr,"%s:%d rc=%d %s\n",__FILE__,__LINE__,rc_,sqlite3_errmsg(dst?dst:src));exit(1);}}while(0)
int main(int argc,char**argv){
  if(argc<6){fprintf(stderr,"src dst replicas txrows indexes(0/1)\n");return 2;}
  sqlite3 *src=0,*dst=0; int reps=atoi(argv[3]), tx=atoi(argv[4]), idx=atoi(argv[5]);
  CK(sqlite3_open(argv[1],&src)); remove(argv[2]);
  char w[4096]; snprintf(w,sizeof w,"%s-wal",argv[2]); remove(w);
  CK(sqlite3_open(argv[2],&dst));
  if(getenv("CACHE")){char q[128];snprintf(q,128,"PRAGMA cache_size=%s",getenv("CACHE"));CK(sqlite3_exec(dst,q,0,0,0));}
  CK(sqlite3_exec(dst,"PRAGMA page_size=32768; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",0,0,0));
  const char *names[]={"candles","signals","decisions","orders","rejections","fills","positions","balance_history","trading_logs","system_events"};
  int nt=10; Tab tabs[10]; long total=0;
  for(int t=0;t<nt;t++){
    Tab *T=&tabs[t]; strcpy(T->name,names[t]);
    sqlite3_stmt *s; char q[512];
    snprintf(q,sizeof q,"SELECT sql FROM sqlite_master WHERE tbl_name='%s' AND sql IS NOT NULL ORDER BY type DESC",names[t]);
    CK(sqlite3_prepare_v2(src,q,-1,&s,0));
    while(sqlite3_step(s)==SQLITE_ROW){const char*sql=(const char*)sqlite3_column_text(s,0); if(!idx && strncmp(sql,"CREATE INDEX",12)==0) continue; CK(sqlite3_exec(dst,sql,0,0,0));}
    sqlite3_finalize(s);
    snprintf(q,sizeof q,"SELECT count(*) FROM %s",names[t]); CK(sqlite3_prepare_v2(src,q,-1,&s,0)); sqlite3_step(s); T->nrow=sqlite3_column_int(s,0); sqlite3_finalize(s);
    snprintf(q,sizeof q,"SELECT * FROM %s ORDER BY rowid",names[t]); CK(sqlite3_prepare_v2(src,q,-1,&s,0));
    T->ncol=sqlite3_column_count(s); for(int c=0;c<T->ncol;c++){const char*cn=sqlite3_column_name(s,c); T->timecol[c]=strstr(cn,"time")||!strcmp(cn,"recorded_at")||!strcmp(cn,"created_at");} T->v=calloc((size_t)T->nrow*T->ncol,sizeof(Val)); int r=0;
    while(sqlite3_step(s)==SQLITE_ROW){for(int c=0;c<T->ncol;c++){Val*v=&T->v[(size_t)r*T->ncol+c]; v->type=sqlite3_column_type(s,c);
      if(v->type==SQLITE_INTEGER) v->i=sqlite3_column_int64(s,c); else if(v->type==SQLITE_FLOAT) v->d=sqlite3_column_double(s,c);
      else if(v->type==SQLITE_TEXT){v->n=sqlite3_column_bytes(s,c); v->s=malloc(v->n+1); memcpy(v->s,sqlite3_column_text(s,c),v->n+1);} } r++;}
    sqlite3_finalize(s);
    char ins[4096]; int p=snprintf(ins,sizeof ins,"INSERT INTO %s VALUES (",names[t]); for(int c=0;c<T->ncol;c++) p+=snprintf(ins+p,sizeof ins-p,c?",?":"?");
    snprintf(ins+p,sizeof ins-p,") ON CONFLICT (id) DO NOTHING"); CK(sqlite3_prepare_v3(dst,ins,-1,SQLITE_PREPARE_PERSISTENT,&T->ins,0));
    total+=T->nrow;
  }
  int ntx=(int)((total+tx-1)/tx); if(ntx<1) ntx=1;
  char id[512]; long ins=0; double w0=now(), c0=cpu();
  for(int k=0;k<reps;k++) for(int j=0;j<ntx;j++){
    CK(sqlite3_exec(dst,"BEGIN IMMEDIATE",0,0,0));
    for(int t=0;t<nt;t++){Tab*T=&tabs[t]; int a=(int)((long)j*T->nrow/ntx), b=(int)((long)(j+1)*T->nrow/ntx);
      for(int r=a;r<b;r++){ for(int c=0;c<T->ncol;c++){Val*v=&T->v[(size_t)r*T->ncol+c];
          if(c==0){int n=snprintf(id,sizeof id,"r%03d:%s",k,v->s); sqlite3_bind_text(T->ins,1,id,n,SQLITE_STATIC);}
          else if(v->type==SQLITE_INTEGER) sqlite3_bind_int64(T->ins,c+1,v->i+(T->timecol[c]?(sqlite3_int64)k*10000000000LL:0)); else if(v->type==SQLITE_FLOAT) sqlite3_bind_double(T->ins,c+1,v->d);
          else if(v->type==SQLITE_TEXT) sqlite3_bind_text(T->ins,c+1,v->s,v->n,SQLITE_STATIC); else sqlite3_bind_null(T->ins,c+1);}
        int rc=sqlite3_step(T->ins); if(rc!=SQLITE_DONE){fprintf(stderr,"step %s: %s\n",T->name,sqlite3_errmsg(dst));return 1;} sqlite3_reset(T->ins); ins++; }}
    CK(sqlite3_exec(dst,"COMMIT",0,0,0));
  }
  double wall=now()-w0, c=cpu()-c0;
  printf("%ld rows (%d replicas of %ld, %d tx of ~%d rows, indexes %d): %.1f s wall, %.1f s cpu, %.0f rows/s, %.2f us cpu/row\n",ins,reps,total,ntx,tx,idx,wall,c,ins/wall,c*1e6/ins);
  return 0;
}
